"""soong's cliff commands, one small module per command family.

Modules here import only argparse, cliff and soong.core at the top; anything
heavier (requests, plumbum, keyring, falcon, yaml) is imported inside
``take_action`` so that ``soong --help`` stays fast.
"""
