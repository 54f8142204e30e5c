"""Library code the stages share: params, paths, the prepared data, training, metrics, MLflow
tracking and safe writes. No module here is a stage, and none imports one."""
