"""The review app: a small local web app (FastAPI + Jinja2 + plain JavaScript) over tasks/review.py."""
