# One image for every Python process of the stack; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /srv/analytics
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
USER nobody
