"""Where the installed kfp-trigger keeps what it deploys: its own packages, and deploy/'s files.

From a checkout (or an editable install of one) that is the checkout: its packages and its
deploy/ folder. From a wheel, the packages are in site-packages and deploy/'s Terraform module,
hashed requirements.txt and example routes are bundled in functions/cli/bundle/ (pyproject.toml's
package-dir).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def service_root() -> Path:
    """The folder that holds kfp-trigger's packages (events/, functions/, pipelines/)."""
    return HERE.parents[1]


def bundled() -> Path:
    """deploy/ as installed: the Terraform module (terraform/), requirements.txt, routes.example.yaml."""
    wheel = HERE / "bundle"
    return wheel if wheel.is_dir() else service_root() / "deploy"


def terraform_module() -> Path:
    return bundled() / "terraform"
