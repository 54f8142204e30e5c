"""What the report and promote stages build on: the comparison tables and charts, the report
page, the behavioral tests and the model registry."""
