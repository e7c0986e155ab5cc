"""NPO + GD: NPO on F plus w·mean NLL on R."""

from mnemoscope.unlearn.methods.npo import NPO

METHOD = NPO("npo_gd", "NPO + w·NLL on R", {"beta": 0.1, "retain_weight": 1.0}, needs_reference=True,
             retain_term="nll")
