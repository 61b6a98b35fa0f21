"""Configuration: what a site, a study and a job request say, read once and checked.

Units (durations, sizes), YAML files with errors that name the field
(yaml_files), the site schema (site_schema, site_values, submit_language),
finding and extending site files (site_lookup), one job's resources per
scheduler (resources) and the quoted rendering of submit templates (templates).

Below every area and above only ``batchml.errors``: nothing here imports a
backend, a study or the registry. Importing this package imports nothing; each
module is imported by name, so ``batchml.data`` can use the units without
paying for pydantic or jinja2.
"""
