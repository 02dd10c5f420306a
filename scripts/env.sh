# Source this file (`source scripts/env.sh`) to run `rasa` and `xiaoer` commands outside
# `make` as `make` runs them: the project's virtualenv first on the PATH, Rasa's telemetry
# off, and the libraries' deprecation warnings (SQLAlchemy 2.0, pkg_resources, TensorFlow,
# jax: about fifteen lines on every `rasa` command) silenced. `xiaoer` and the servers set
# the same themselves (xiaoer/core/quiet.py); PYTHONWARNINGS=default shows them again.
_xiaoer_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export PATH="$_xiaoer_root/.venv/bin:$PATH"
export PYTHONPATH="$_xiaoer_root/scripts/site${PYTHONPATH:+:$PYTHONPATH}"   # sitecustomize.py
export RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2
export PYTHONWARNINGS="ignore::DeprecationWarning,ignore::PendingDeprecationWarning"
unset _xiaoer_root
