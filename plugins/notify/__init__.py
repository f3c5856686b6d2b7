"""Built-in notification plugins: observers of ``after_run`` / ``on_run_error`` that tell people
how a run went (:mod:`rlbridge.plugins.notify.email`: a summary by e-mail, set in ``[notify]``).
"""
