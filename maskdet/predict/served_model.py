"""The served model's code, as MLflow logs it: models from code. When MLflow
loads the registered Predictor it runs this file (with the logged copy of the
package on its path) instead of unpickling an object, so loading a model
never executes a pickle, and the code it runs is readable in the artifacts."""

from mlflow.models import set_model

from maskdet.predict.serving import PredictorModel

set_model(PredictorModel())
