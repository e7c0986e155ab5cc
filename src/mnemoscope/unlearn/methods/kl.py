"""GA + KL: gradient ascent on F plus KL(π_ref ‖ π_θ) on R, token-mean over scored positions."""

from mnemoscope.unlearn.methods.base import Method
from mnemoscope.unlearn.methods.ga import GradientAscent

METHOD: Method = GradientAscent("kl", "−NLL on F + w·KL(π_ref ‖ π_θ) on R", {"retain_weight": 1.0},
                                needs_reference=True, retain_term="kl")
