"""Bridges to trainers lldmix does not own (the Hugging Face Trainer: hf_trainer.py) and the real pair that
uses it (real_pair.py: runs/real-pair.yaml, which cli.py dispatches to; the dashboard reads only
real_pair_spec.is_real_pair_text). Nothing else in lldmix_core imports this package. hf_trainer.py never
imports transformers (the Trainer calls the callback's `on_*` methods by name); real_pair.py does, inside
its functions, to run the Trainer."""
