"""``mixfx app``: a local web page for style transfer (:mod:`mixfx.app.server`, a small FastAPI
server and one static page) over the work of :mod:`mixfx.app.engine` (uploads checked,
transfers queued on one worker thread, files, plots, preset re-renders)."""
