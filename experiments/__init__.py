"""The experiment files (`*.toml`) that ship with lossbench as the package
`lossbench.experiments` (pyproject.toml maps it onto this folder): `--config NAME` finds them
by name, and `lossbench experiments` lists them. This file only makes the folder a package."""
