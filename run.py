"""Development entry point: ``python run.py`` serves the API on HOST:PORT (``make run``)."""
from src.app import create_app

if __name__ == "__main__":
    app = create_app()
    app.run(host=app.config["HOST"], port=app.config["PORT"], threaded=True,
            debug=False, use_reloader=False)
