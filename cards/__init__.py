"""Dataset and model cards, release folders and Hub publishing."""
