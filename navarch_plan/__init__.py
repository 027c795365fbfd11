"""navarch-plan: a declarative, Terraform-style reconciler for GPU instances."""

__version__ = "0.1.0"
