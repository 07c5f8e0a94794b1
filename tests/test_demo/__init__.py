"""Tests of the web demo (``demo/web_demo.py``)."""
