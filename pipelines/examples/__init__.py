"""Example pipelines routes.yaml can name (`pipelines.examples.survey:survey_retrain`)."""
