"""The ablation steps of METHOD.md, B0 (YOLO-Pose) to B5 (ER-Pose): one definition.

The zoo builds a head per step and the criterion picks assignment and loss per step; both
import the names from here (a module of its own, so neither has to import the other).
"""

STEPS = ("B0", "B1", "B2", "B3", "B4", "B5")
