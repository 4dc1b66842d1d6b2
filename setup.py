from setuptools import setup

# Metadata and options live in setup.cfg.
setup()
