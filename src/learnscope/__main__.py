from learnscope.cli import app

app(prog_name="learnscope")
