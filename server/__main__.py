"""`python -m server --port=8500 --rest_api_port=8501 --model_name=m --model_base_path=/models/m`"""
import os
import sys

if __name__ == "__main__":
    from server._env import set_defaults as set_env_defaults
    set_env_defaults()  # before TensorFlow is imported
    from server._app import main
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is stopped and closed by now; the interpreter's final garbage
    # collection of TensorFlow's objects would only delay the exit by seconds.
    os._exit(code)
