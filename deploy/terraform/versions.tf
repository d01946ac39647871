terraform {
  required_version = ">= 1.9" # validations that refer to other variables

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0"
    }
  }
}
