"""What SREs and finance ops look at: dead letters, replays, lineage, health."""
