"""paperlib: information-theoretic regularization for learning global features by sequential VAE.

A reproduction suite for Akuzawa, Iwasawa & Matsuo, "Information-theoretic regularization for
learning global features by sequential VAE", Machine Learning 110 (2021). See README.md and
DESIGN.md for which parts follow the paper and which are this suite's reconstruction.
"""

__version__ = "0.1.0"
