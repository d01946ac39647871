"""`kfp-trigger deploy plan`: every Google Cloud resource routes.yaml needs."""
