# The functions under serverless-offline, as `npm start` runs them, listening on all
# interfaces of the container so the host and MinIO's webhook reach them.
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# The root's own scripts are skipped: its `prepare` builds the npm package from lib/, which is not
# copied yet (and the functions run from the sources). `npm rebuild` then runs the dependencies'
# install scripts (the Node 24 of the `node` devDependency, esbuild), as `npm ci` would have.
RUN npm ci --ignore-scripts && npm rebuild
COPY . .
ENV TRANSCRIBO_HTTP_HOST=0.0.0.0 TRANSCRIBO_EVENTS_HOST=0.0.0.0
EXPOSE 3000 3003
CMD ["npm", "start"]
