from kamikaze.cli import main

main(prog_name="kamikaze")
