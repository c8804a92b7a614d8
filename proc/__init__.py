"""Running external commands: `run` (proc.run), the one git helper (proc.git), the one secret scrubber
(proc.secrets). Below the operations, the sweep driver and the automation, above the ML core."""
