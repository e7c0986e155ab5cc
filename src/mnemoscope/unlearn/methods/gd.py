"""Gradient difference (GD): gradient ascent on F plus the NLL on R. L = −mean NLL_F + w·mean NLL_R."""

from mnemoscope.unlearn.methods.base import Method
from mnemoscope.unlearn.methods.ga import GradientAscent

METHOD: Method = GradientAscent("gd", "gradient difference: −NLL on F + w·NLL on R", {"retain_weight": 1.0},
                                retain_term="nll")
