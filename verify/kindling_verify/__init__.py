"""kindling's CI verification: one subpackage per concern, tests beside their code."""
