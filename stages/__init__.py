"""Pipeline stages, one module per dvc.yaml stage; shared code lives in stages.lib."""
