"""Fine-tuning recipes that change what a backbone can read (SJD2's noisy inputs)."""
