"""`python -m bench`: run every benchmark and print its table."""

from bench import reliability, trigger_path

if __name__ == "__main__":
    trigger_path.main()
    reliability.main()
