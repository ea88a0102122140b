# The functions under serverless-offline, as `npm start` runs them, listening on all
# interfaces of the container so the host and MinIO's webhook reach them.
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY . .
ENV TRANSCRIBO_HTTP_HOST=0.0.0.0 TRANSCRIBO_EVENTS_HOST=0.0.0.0
EXPOSE 3000 3003
CMD ["npm", "start"]
