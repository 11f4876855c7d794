//go:build unix && !linux

package main

import "fmt"

func startEpollRelay(name, _ string) (*endpoint, error) {
	return nil, fmt.Errorf("%w: %s needs Linux epoll", errSkip, name)
}
