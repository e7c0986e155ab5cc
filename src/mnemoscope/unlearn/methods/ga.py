"""Gradient ascent (GA): maximise the NLL of the forget set. L = −mean NLL_F."""

from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class GradientAscent(Method):
    def forget_loss(self, step, hp):
        return L.ga_loss(step.nll("forget"))


METHOD = GradientAscent("ga", "gradient ascent: −NLL on F")
