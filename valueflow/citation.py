"""How to cite VALUEFLOW; one copy, used by the README, the cards and CITATION.cff."""

PAPER_BIBTEX = """@inproceedings{kim2026valueflow,
  title         = {{VALUEFLOW}},
  author        = {Kim and Hyeon and Oh and Do},
  booktitle     = {Proceedings of the 43rd International Conference on Machine Learning (ICML)},
  year          = {2026},
  eprint        = {2602.03160},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2602.03160}
}"""
PAPER_REFERENCE = "Kim, Hyeon, Oh, Do. VALUEFLOW. ICML 2026. arXiv:2602.03160."
