# The two commands of README.md. Both install what is missing first (scripts/setup.sh).
.PHONY: run test coverage build clean

run:  ## set up, build, and run the whole service on 127.0.0.1 until Ctrl-C
	@scripts/run.sh

test:  ## set up, build, and run every test
	@scripts/test.sh

coverage:  ## line coverage of unit and integration tests, merged (report in .build/coverage/html)
	@scripts/coverage.sh

build:
	swift build -c release --product counter-fcgi

clean:
	rm -rf .build .build-coverage .build-dev .run
