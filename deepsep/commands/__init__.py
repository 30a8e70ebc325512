"""Click command groups that deepsep.cli registers."""
