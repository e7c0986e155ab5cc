"""NPO + KL: NPO on F plus w·KL(π_ref ‖ π_θ) on R."""

from mnemoscope.unlearn.methods.npo import NPO

METHOD = NPO("npo_kl", "NPO + w·KL(π_ref ‖ π_θ) on R", {"beta": 0.1, "retain_weight": 1.0}, needs_reference=True,
             retain_term="kl")
