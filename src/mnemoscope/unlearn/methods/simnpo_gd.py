"""SimNPO + GD: SimNPO on F plus w·mean NLL on R (the retain-regularised form of the SimNPO paper)."""

from mnemoscope.unlearn.methods.simnpo import SimNPO

METHOD = SimNPO("simnpo_gd", "SimNPO + w·NLL on R", {"beta": 4.5, "gamma": 0.0, "retain_weight": 1.0},
                retain_term="nll")
