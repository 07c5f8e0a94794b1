"""Make a numeric reference fixture by running the official MagNet code
(developer tool; see ``tools/analysis_tools/make_official_fixture.py``)."""
