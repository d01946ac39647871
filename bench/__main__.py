"""`python -m bench`: run every benchmark and print its table."""

from bench import reliability, retention, serving, status_page, trigger_path

if __name__ == "__main__":
    serving.main()
    trigger_path.main()
    reliability.main()
    retention.main([])
    status_page.main([])
