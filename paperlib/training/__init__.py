"""The paper's method: the objectives (``regularizers``: elbo, mi, cmi and the adversarial
I(z; s) critic) and the one trainer that fits every model with any of them (``train.fit``)."""
