"""`make bench`: finsync's speed beside baselines measured in the same run."""
