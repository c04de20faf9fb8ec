# One image for every Python process of the stack; docker-compose.yml picks the command.
# Only what runs is copied: no tests, benchmarks or developer tools.
FROM python:3.11.7-slim-bookworm
WORKDIR /srv/analytics
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app/ app/
COPY tasks/ tasks/
COPY reporting/ reporting/
COPY celeryconfig.py wsgi.py gunicorn.conf.py ./
USER nobody
