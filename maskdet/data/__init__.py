"""The data builder: the built-in sample (rendered masks on stock faces),
readers for each supported data set, and the data stage that validates,
crops and splits them into ``data/processed``."""
