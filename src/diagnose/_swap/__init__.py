"""The code swap: find a target function, plan what each call runs, generate the wrapper's
code and swap it into the function object (so every reference sees the probe)."""
