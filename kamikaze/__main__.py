from kamikaze.quick import main

main()
