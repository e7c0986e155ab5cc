"""Capacity: bits of knowledge stored per person and per parameter as exposures grow (Allen-Zhu & Li
2024). The runnable module is ``recipe.py``; its report section (bits by exposures with the fitted
line, bits over training, the capacity ratio) is ``report.py``."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "capacity",
    "mnemoscope.recipes.capacity.recipe",
    claim=Claim(
        "capacity", "Allen-Zhu & Li 2024, Physics of Language Models: Part 3.3, Knowledge Capacity Scaling Laws",
        "Knowledge stored grows with exposures: bits stored per person rise with the number of exposures "
        "(toward ~2 bits per parameter at saturation).",
        (Effect("capacity/fit/slope_per_decade", "bits per person per decade of exposures"),
         Effect("capacity/person_bits/mean@exposures=100", "bits per person, 100 exposures − never trained",
                minus="capacity/person_bits/mean@exposures=0")),
        scale="The tiny model is far from saturation: it stores ~0.002 bits/parameter, not the paper's ~2; "
              "only the trend with exposures is testable here. --set scale=powered (0.1 M parameters, 300 "
              "people × 100 exposures) measures ≈ 0.06 bits/parameter; --set scale=gpu trains to 1,000 exposures."),
    headlines=("capacity/bits_per_parameter", "capacity/bits"),
    series=(
        Series("Stored bits by exposures", "capacity/bits@exposures={x}", "exposures"),
        Series("Bits per person by exposures", "capacity/bits_per_person@exposures={x}", "exposures"),
    ),
    sections=("mnemoscope.recipes.capacity.report",),
)
