"""Bridges to trainers lldmix does not own (the Hugging Face Trainer: hf_trainer.py). Nothing else in
lldmix_core imports this package; transformers itself is never imported here (the Trainer calls the
callback's `on_*` methods by name)."""
