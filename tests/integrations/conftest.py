"""The DDP script is run as a program by its test, never imported (it needs lightning)."""

collect_ignore = ["lightning_ddp_script.py"]
