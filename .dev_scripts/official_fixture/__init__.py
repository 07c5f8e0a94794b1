"""Make a numeric reference fixture by running the official MagNet code
(developer tool; see ``.dev_scripts/make_official_fixture.py``)."""
