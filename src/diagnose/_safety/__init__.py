"""Expression safety: the safe policy (an allowlist decided from the AST), the guards it
compiles in (the meter, operators, guarded builtins, the call guard) and secret-free reads."""
