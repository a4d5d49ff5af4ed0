# The two commands of README.md. Both install what is missing first (scripts/setup.sh).
.PHONY: run test build clean

run:  ## set up, build, and run the whole service on 127.0.0.1 until Ctrl-C
	@scripts/run.sh

test:  ## set up, build, and run every test
	@scripts/test.sh

build:
	swift build -c release --product counter-fcgi

clean:
	rm -rf .build .run
